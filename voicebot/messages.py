"""Texts of the SMS and e-mails the line sends, per language.

Placeholders in braces are filled by :class:`~voicebot.backends.base.OutgoingMessage`;
secret ones (a password, a code) are masked in every stored copy.
"""

from __future__ import annotations

MESSAGES: dict[str, dict[str, dict[str, str]]] = {
    "username_email": {
        "es": {
            "subject": "Su usuario de {channel_name}",
            "body": "Hola, {name}:\n\nSu usuario de {channel_name} es: {username}\n\n"
                    "La contraseña temporal le llega por SMS a su móvil. Al entrar deberá cambiar "
                    "las contraseñas.\n\nSi no ha llamado usted, avísenos cuanto antes.",
        },
        "en": {
            "subject": "Your {channel_name} user",
            "body": "Hello {name},\n\nYour {channel_name} username is: {username}\n\n"
                    "The temporary password is on its way to your mobile by SMS. You will have to "
                    "change the passwords when you log in.\n\nIf you did not call us, tell us at once.",
        },
    },
    "temporary_password_sms": {
        "es": {"body": "Su contraseña temporal de {channel_name} es {password}. Caduca en {hours} h. No la comparta con nadie."},
        "en": {"body": "Your temporary {channel_name} password is {password}. It expires in {hours} h. Never share it."},
    },
    "operation_code_sms": {
        "es": {"body": "Código de desbloqueo de la operación {reference}: {code}. Introdúzcalo en su Banca Electrónica. Caduca en {minutes} min."},
        "en": {"body": "Unlock code for operation {reference}: {code}. Enter it in your e-banking. It expires in {minutes} min."},
    },
    "password_changed_sms": {
        "es": {"body": "Ha cambiado sus contraseñas de Banca Electrónica. Si no ha sido usted, llámenos al {agent_phone}."},
        "en": {"body": "Your e-banking passwords have been changed. If this was not you, call us on {agent_phone}."},
    },
}

CHANNEL_NAMES = {
    "es": {"ebanking": "Banca Electrónica", "phone": "Banca Telefónica"},
    "en": {"ebanking": "e-banking", "phone": "telephone banking"},
}


def text(message: str, language: str, part: str = "body") -> str:
    by_language = MESSAGES[message]
    return by_language.get(language, by_language["es"])[part]
