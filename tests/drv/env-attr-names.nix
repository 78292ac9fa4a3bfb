derivation {
  name = "env-names"; system = "x86_64-linux"; builder = "/bin/sh";
  "with space" = "1";
  "dotted.name" = "2";
  "ünïcode" = "3";
  "" = "empty name";
  "quote\"in" = "4";
  UPPER = "5";
  _under = "6";
}
