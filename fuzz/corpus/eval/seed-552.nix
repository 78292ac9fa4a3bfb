[ 1 (-2) 1.5 "a<b>&\"c\"\nd" true false null ./xml-scalars.nix { } [ ] ]
