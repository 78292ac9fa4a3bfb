derivation {
  name = "filter-source"; system = "x86_64-linux"; builder = "/bin/sh";
  src = builtins.filterSource (path: type: type == "directory" || builtins.match ".*\\.txt" path != null) ./fixtures/tree;
}
