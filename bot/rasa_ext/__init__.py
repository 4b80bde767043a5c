"""What Rasa loads by dotted path from config.yml, endpoints*.yml and
credentials.yml: NLU components, input channels, the tracker and lock stores.

Importing the package masks passwords in the URLs that Rasa's own loggers
write (`bot.rasa_ext.log_masking`)."""

from bot.rasa_ext.log_masking import mask_rasa_loggers

mask_rasa_loggers()
