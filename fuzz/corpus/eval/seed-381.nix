[ http://example.org/a?b=c mailto:someone@example.org ]
