let d = derivation { name = "d"; system = "s"; builder = "b"; outputs = [ "out" "dev" ]; }; in builtins.getContext "${d} ${d.dev} ${d.drvPath}"
