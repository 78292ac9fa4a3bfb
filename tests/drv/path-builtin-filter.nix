derivation {
  name = "path-filtered"; system = "x86_64-linux"; builder = "/bin/sh";
  src = builtins.path {
    path = ./fixtures/tree;
    name = "filtered-tree";
    filter = path: type: type != "symlink" && baseNameOf path != "skip.txt";
  };
}
