"""Signatures: keys, cosign signature formats, keyless (Sigstore) certificates, DSSE and in-toto.

Pure values and rules: nothing here does I/O beyond reading bytes it is given.  Finding
signatures in an image store and holding what does not verify is the engine's work
(``imagevet.engine``).
"""
