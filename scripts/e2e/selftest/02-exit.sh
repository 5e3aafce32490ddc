# Deliberately broken: a bare non-zero exit.
echo "exiting 3"
exit 3
