let d = derivation { name = "p"; system = "s"; builder = "b"; extra = 1; flag = true; }; in [ d.extra d.flag d.type (builtins.attrNames d.drvAttrs) ]
