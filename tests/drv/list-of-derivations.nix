[
  (derivation { name = "first"; system = "x86_64-linux"; builder = "/bin/sh"; })
  (derivation { name = "second"; system = "x86_64-linux"; builder = "/bin/sh"; })
]
