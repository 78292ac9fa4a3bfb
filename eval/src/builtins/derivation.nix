# The `derivation` builtin, a Nix function over `derivationStrict` as in Nix itself: its
# result is the set of the first output. Every output's set carries the input attributes,
# all the outputs by name, `all` (the output sets), `drvAttrs` (the input), and its own
# `outPath`, `drvPath`, `outputName` and `type = "derivation"` — exactly what Nix's
# derivation.nix builds with `//` and `listToAttrs`. `outputSets` (a primop the evaluator
# passes in, not a builtin) builds those sets directly, without Nix's intermediate sets, so a
# derivation keeps only what it shows.
outputSets:
attrs@{ outputs ? [ "out" ], ... }:
outputSets attrs
