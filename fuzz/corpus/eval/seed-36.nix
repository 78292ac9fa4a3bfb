''
	no stripping for tabs
	  here
''
