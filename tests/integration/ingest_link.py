#!/usr/bin/env python3
"""Signed links made independently of relay's C code (hmac + base64 of
Python's standard library), for the ingest scenario: a token whose target
the signer chose, e.g. a javascript: URL relayctl sign-link refuses to
make, to show that the gateway checks the target after the signature.

usage: ingest_link.py KID SECRET JSON_PAYLOAD   -> prints the token"""
import base64
import hashlib
import hmac
import sys


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


kid, secret, payload = sys.argv[1], sys.argv[2], sys.argv[3]
signed = kid + "." + b64url(payload.encode())
mac = hmac.new(secret.encode(), signed.encode(), hashlib.sha256).digest()
print(signed + "." + b64url(mac))
