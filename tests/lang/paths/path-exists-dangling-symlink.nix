builtins.pathExists ./fixtures/dangling-link
