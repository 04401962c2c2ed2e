#!/usr/bin/env bash
# The conversion matrix again, on the drop-in's shared-memory tier: every
# pixel cache a sealed segment from the server's Unix socket.
DPC_VIA=shm exec bash "$(dirname "$0")/convert-matrix.sh"
