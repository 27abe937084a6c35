class AccountsError(Exception):
    """A request that the accounts domain refuses, with a message a person can read."""

    code = "invalid"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class InvitationInvalid(AccountsError):
    code = "invitation_invalid"


class LastOwner(AccountsError):
    code = "last_owner"


class PermissionDenied(AccountsError):
    code = "permission_denied"
