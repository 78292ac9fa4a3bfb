let v = "value"; multi = "a\nb"; in ''
  x = ${v};
    y = ${multi};
''
