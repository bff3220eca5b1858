// One Key Vault secret. A module of its own so the vault module can create it conditionally
// (only when it does not exist yet) while the resource itself stays plain for the checks.

param vaultName string
param name string

@secure()
param value string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: vaultName
}

resource secret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  // checkov:skip=CKV_AZURE_41:no expiry: an expired secret cannot be read, which would stop key exchanges or webhooks; rotation is operator-driven (docs/operators.md)
  parent: vault
  name: name
  properties: {
    contentType: 'text/plain'
    value: value
  }
}
