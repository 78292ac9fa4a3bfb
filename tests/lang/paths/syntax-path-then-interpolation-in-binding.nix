# Inside a binding the error expects the binding's semicolon.
{ a = /a/b #c
  ${"x"}; }
