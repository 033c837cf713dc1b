"""Contract values from ../shared/DOMAIN.md that tests check against."""

# "Routing teams (contract)"
DOMAIN_TEAMS = frozenset({
    "declaration", "paiement", "cotisations", "creation", "cessation", "attestations", "compte",
    "seuils", "employeur", "recouvrement", "difficultes", "hors_perimetre", "accueil",
})
