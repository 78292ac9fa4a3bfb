let
  dep = derivation { name = "dep"; system = "x86_64-linux"; builder = "/bin/sh"; outputs = [ "out" "dev" ]; };
in
derivation {
  name = "env-types"; system = "x86_64-linux"; builder = "/bin/sh";
  int = 7;
  negative = -3;
  float = 2.5;
  floatWhole = 3.0;
  true = true;
  false = false;
  null = null;
  list = [ 1 "a" true false null 2.5 ];
  nestedList = [ [ "x" [ "y" ] ] "z" ];
  path = ./fixtures/hello.txt;
  pathInList = [ ./fixtures/hello.txt "plain" ];
  withContext = "prefix ${dep.dev} suffix";
  derivationValue = dep;
  empty = "";
  escapes = "tab\t newline\n cr\r quote\" backslash\\ dollar$ unicode é✓";
}
