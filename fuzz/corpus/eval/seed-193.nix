let d = derivation { name = "m"; system = "x86_64-linux"; builder = "/bin/sh"; } // { meta.description = "d"; }; in [ d.meta.description d.name (builtins.typeOf d.drvPath) ]
