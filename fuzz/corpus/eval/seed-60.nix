"tab\t nl\n cr\r quote\" backslash\\ ctl" + builtins.fromJSON "\"\\u0001\\u001f\""
