let
  version = 3;
in "kiln-" + version
