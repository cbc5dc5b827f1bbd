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
