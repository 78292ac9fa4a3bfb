let
  dep = derivation { name = "dep"; system = "x86_64-linux"; builder = "/bin/sh"; };
in
derivation {
  name = "structured"; system = "x86_64-linux"; builder = "/bin/sh";
  __structuredAttrs = true;
  outputs = [ "out" "dev" ];
  int = 42;
  float = 1.5;
  yes = true;
  no = false;
  nothing = null;
  list = [ 1 "two" [ 3 ] ];
  nested = { a = { b = "c"; }; inherit dep; };
  src = ./fixtures/hello.txt;
  text = "line1\nline2 \"quoted\" ü";
}
