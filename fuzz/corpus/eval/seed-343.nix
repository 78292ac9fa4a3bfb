builtins.warn "kiln corpus warning" 1
