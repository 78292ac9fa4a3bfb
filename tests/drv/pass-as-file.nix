derivation {
  name = "pass-as-file"; system = "x86_64-linux"; builder = "/bin/sh";
  passAsFile = [ "text" "missing" ];
  text = "a long text\nwith lines\n";
}
