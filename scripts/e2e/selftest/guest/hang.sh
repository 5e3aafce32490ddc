#!/bin/bash
# Never ends: run.sh must stop the VM at VM_TIMEOUT and fail.
echo "hanging the whole VM"
sleep 100000
