builtins.pathExists ./fixtures/links/dangling-link
