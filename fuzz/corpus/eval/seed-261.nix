builtins.getEnv "KILN_CORPUS_VAR"
