# The `derivation` builtin, written in Nix over `derivationStrict` as Nix itself does.
# `derivationStrict` returns the `.drv` path and one path per output; this wrapper turns that
# into one attribute set per output. Every output set carries the input attributes, all the
# outputs by name, `all`, `drvAttrs`, and its own `outPath`, `drvPath`, `outputName` and
# `type = "derivation"`; the result is the set of the first output.
attrs@{ outputs ? [ "out" ], ... }:
let
  strict = derivationStrict attrs;
  outputSet = outputName: {
    name = outputName;
    value = shared // {
      outPath = builtins.getAttr outputName strict;
      drvPath = strict.drvPath;
      type = "derivation";
      inherit outputName;
    };
  };
  outputSets = map outputSet outputs;
  shared = attrs // builtins.listToAttrs outputSets // {
    all = map (output: output.value) outputSets;
    drvAttrs = attrs;
  };
in
(builtins.head outputSets).value
