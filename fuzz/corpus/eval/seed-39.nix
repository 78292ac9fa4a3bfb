let v = "V"; in ''${v}
    indented
  ''
