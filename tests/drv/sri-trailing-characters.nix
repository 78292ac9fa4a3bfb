# Nix decodes base64 up to the first `=`: characters after an SRI hash's padding are ignored.
[
  (derivation { name = "a"; system = "x"; builder = "b"; outputHashMode = "flat";
    outputHash = "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=x"; })
  (derivation { name = "b"; system = "x"; builder = "b"; outputHashMode = "recursive";
    outputHash = "sha1-2jmj7l5rSw0yVb/vlWAYkK/YBwk=\n=y"; })
]
