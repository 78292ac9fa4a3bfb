builtins.getContext (builtins.path { path = ./fixtures/tree; name = "ctx-tree"; })
