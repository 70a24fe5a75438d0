"""Candidate generators: popularity, session co-visitation, collaborative filtering, content."""
