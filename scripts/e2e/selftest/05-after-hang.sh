# The run goes on after a hang, and the hung scenario left no process.
if pgrep -f "sleep 100[01]" >/dev/null; then fail "left by 04-hang: $(pgrep -af 'sleep 100[01]')"; fi
note "nothing left of 04-hang"
