"/prefix" + ./rel
