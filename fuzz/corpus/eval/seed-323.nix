[ (null.a or 1) ({ a = null; }.a.b or 2) ]
