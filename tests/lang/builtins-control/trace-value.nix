builtins.trace "tracing message" 42
