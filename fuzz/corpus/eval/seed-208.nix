[ (builtins.placeholder "dev") (builtins.placeholder "bin") ]
