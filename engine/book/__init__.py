"""Local order books: the pure book (``local_book``) and its arithmetic (``measures``),
kept in sync from diff depth and REST snapshots by its async edge (``keeper``)."""
