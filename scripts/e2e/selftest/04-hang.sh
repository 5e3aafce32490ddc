# Deliberately hangs past its bound, with a background child that must die
# with it.
sleep 1000 &
echo "hanging"
sleep 1001
