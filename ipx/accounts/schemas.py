from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints


class AccountCreate(BaseModel):
    email: EmailStr
    password: str = Field(min_length=10, max_length=200, description="At least 10 characters.")
    display_name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)] = Field(
        description="Signed into every registration as the creator's name, so it cannot be blank."
    )


class AccountRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    account_id: str = Field(validation_alias="id")
    email: str
    display_name: str
    role: str
    created_at: datetime
    two_factor: bool = Field(
        validation_alias="two_factor_enabled", description="Whether logging in also takes an authenticator's code."
    )


class TokenRead(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_at: datetime


class PasswordResetRequest(BaseModel):
    email: str = Field(max_length=320, description="The account's address; the answer is the same if it has none.")


class PasswordResetSent(BaseModel):
    detail: str


class PasswordResetConfirm(BaseModel):
    token: str = Field(min_length=1, max_length=100, description="The secret at the end of the mailed link.")
    password: str = Field(max_length=200, description="The new password: 10 to 200 characters.")


class PasswordChange(BaseModel):
    current_password: str = Field(max_length=1000)
    new_password: str = Field(max_length=200, description="10 to 200 characters.")


class PasswordConfirmation(BaseModel):
    password: str = Field(max_length=1000, description="The account's current password.")


class TwoFactorSetupRead(BaseModel):
    secret: str = Field(description="The key, base32 in groups of four, for typing into an authenticator app.")
    otpauth_uri: str = Field(description="The same key as an otpauth:// URI, which apps read from a QR code.")
    detail: str


class TwoFactorCode(BaseModel):
    code: str = Field(max_length=100, description="The 6 digits the authenticator app shows now.")


class BothSteps(BaseModel):
    """The password and a code: what turning two-step verification off, or making new recovery codes, asks."""

    password: str = Field(max_length=1000)
    code: str = Field(max_length=100, description="The authenticator's current code, or an unused recovery code.")


class RecoveryCodesRead(BaseModel):
    recovery_codes: list[str] = Field(
        description="Single-use codes that stand in for the authenticator; shown this once, only hashes are kept."
    )


class TwoFactorStatusRead(BaseModel):
    enabled: bool
    enabled_at: datetime | None
    setting_up: bool = Field(description="A set-up was begun and waits for the app's first code.")
    recovery_codes_left: int
