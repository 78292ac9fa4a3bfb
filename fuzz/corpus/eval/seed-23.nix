builtins.typeOf (derivation { name = "t"; system = "s"; builder = "b"; })
