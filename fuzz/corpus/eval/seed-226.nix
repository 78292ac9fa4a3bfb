# An environment variable that is not UTF-8 is read as the bytes it holds.
let
  value = builtins.getEnv "KILN_CORPUS_BYTES_VAR";
in
[ value (builtins.stringLength value) ]
