"""What the book and the deck read: the findings document (:mod:`.findings`), display tables
(:mod:`.tables`), words for column names (:mod:`.labels`) and figures (:mod:`.figures`)."""
