let x = "  spaced"; in ''
    ${x}
  y
''
