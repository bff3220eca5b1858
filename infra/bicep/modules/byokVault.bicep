// A second Key Vault for customers' own provider keys (BYOK): the service sets and deletes secrets here, so it
// holds Key Vault Secrets Officer on this vault only, and stays a mere reader of the vault with its own secrets.

param name string
param location string
param tags object = {}

@description('Object ID of the service\'s managed identity.')
param principalId string

// Built-in role definition (the same ID in every tenant).
var keyVaultSecretsOfficer = 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    // checkov:skip=CKV_AZURE_109:no firewall: Flex Consumption without VNet integration reaches the vault over its public endpoint; access is Entra RBAC only
    // checkov:skip=CKV_AZURE_189:public endpoint needed for the same reason (the service's own reads and writes)
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource secretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, keyVaultSecretsOfficer)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsOfficer)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

output name string = vault.name
output uri string = vault.properties.vaultUri
