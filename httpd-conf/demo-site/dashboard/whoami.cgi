#!/bin/sh
# A protected CGI script: what mod_scalekit hands to any CGI program, as plain text.
echo "Content-Type: text/plain; charset=utf-8"
echo
echo "REMOTE_USER=${REMOTE_USER:-}"
echo "AUTH_TYPE=${AUTH_TYPE:-}"
env | grep '^SCALEKIT_' | sort
