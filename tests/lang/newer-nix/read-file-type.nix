[ (builtins.readFileType ./.) (builtins.readFileType ./read-file-type.nix) (builtins.readFileType ../paths/fixtures/dangling-link) ]
