[ "cr\r" "tab\t" "dollar-brace $${" "just $" "brace {" "back\\slash" "quote\"" ]
