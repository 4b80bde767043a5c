"""What Rasa loads by dotted path from config.yml, endpoints*.yml and
credentials.yml: NLU components, input channels, the tracker and lock stores."""
