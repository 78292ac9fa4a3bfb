[
  (derivation { name = "a"; system = "\t"; builder = "1"; })
  (derivation { name = "b"; system = "x\ny\r"; builder = "1"; })
]
