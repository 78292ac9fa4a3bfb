derivation {
  name = "placeholders"; system = "x86_64-linux"; builder = "/bin/sh";
  outputs = [ "out" "dev" ];
  args = [ "-c" "mkdir -p ${builtins.placeholder "out"} ${builtins.placeholder "dev"}" ];
  devPath = builtins.placeholder "dev";
}
