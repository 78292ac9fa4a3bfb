[ (builtins.readFileType ./.) (builtins.readFileType ./read-file-type.nix) (builtins.readFileType ../builtins-io/fixtures/links/dangling-link) ]
