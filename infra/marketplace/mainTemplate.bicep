// Liutong managed application: what a customer's deployment puts into the managed resource group.
//
// A minimal consumer of the key exchange. A Logic App with its own system-assigned identity asks ARM
// for a token of the *managed application's* identity (listTokens, audience = Liutong's API), posts
// it to Liutong's key exchange with the application's resource ID, and keeps the returned Liutong
// API key in a Key Vault in this resource group. It runs on creation and then on a schedule, so a
// rotated key is picked up well within the rotation grace period.
//
// The application's system-assigned identity comes from createUiDefinition.json
// (outputs.managedIdentity). The Logic App's identity needs permission to call listTokens on the
// application, which lives outside this resource group: the customer grants it once (see
// docs/operators.md). The Marketplace needs JSON: `make package` builds mainTemplate.json from this file.

param location string = resourceGroup().location

@description('Base URL of the Liutong service (publisher constant; make package sets it).')
@minLength(1)
param liutongServiceUrl string

@description('App ID URI of Liutong\'s API (the token audience; publisher constant, make package sets it).')
@minLength(1)
param liutongAudience string

@description('How often the Logic App refreshes the key, in hours.')
@minValue(1)
@maxValue(24)
param refreshHours int = 12

@description('Marketplace deployments are cross-tenant; set false only to test in the publisher\'s own tenant.')
param crossTenant bool = true

// The managed resource group is managed by the application: its ID is the application's ID.
var applicationId = resourceGroup().managedBy
var resourceToken = toLower(uniqueString(resourceGroup().id))
var armEndpoint = environment().resourceManager
var apiKeySecretName = 'liutong-api-key'

// Built-in role definitions.
var roles = {
  keyVaultSecretsOfficer: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: 'kv-lt-${resourceToken}'
  location: location
  properties: {
    // checkov:skip=CKV_AZURE_109:the Logic App (multi-tenant) reaches the vault over its public endpoint; access is Entra RBAC only
    // checkov:skip=CKV_AZURE_189:public endpoint for the same reason
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource keyFetcher 'Microsoft.Logic/workflows@2019-05-01' = {
  name: 'logic-liutong-key-${resourceToken}'
  location: location
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    state: 'Enabled'
    definition: {
      '$schema': 'https://schema.management.azure.com/providers/Microsoft.Logic/schemas/2016-06-01/workflowdefinition.json#'
      contentVersion: '1.0.0.0'
      triggers: {
        Every_few_hours: {
          type: 'Recurrence'
          recurrence: {
            frequency: 'Hour'
            interval: refreshHours
          }
        }
      }
      actions: {
        // A token of the managed application's own identity, for Liutong's audience.
        Get_application_token: {
          type: 'Http'
          inputs: {
            method: 'POST'
            uri: '${armEndpoint}${skip(applicationId, 1)}/listTokens?api-version=2019-07-01'
            body: {
              authorizationAudience: liutongAudience
            }
            authentication: {
              type: 'ManagedServiceIdentity'
              audience: armEndpoint
            }
          }
          runtimeConfiguration: {
            secureData: {
              properties: [
                'outputs'
              ]
            }
          }
        }
        Exchange_key: {
          type: 'Http'
          runAfter: {
            Get_application_token: [
              'Succeeded'
            ]
          }
          inputs: {
            method: 'POST'
            uri: '${liutongServiceUrl}/api/provisioning/key'
            headers: {
              Authorization: '@{concat(\'Bearer \', body(\'Get_application_token\')?[\'value\'][0]?[\'access_token\'])}'
              'Content-Type': 'application/json'
            }
            body: {
              application_id: applicationId
            }
          }
          runtimeConfiguration: {
            secureData: {
              properties: [
                'inputs'
                'outputs'
              ]
            }
          }
        }
        Store_key: {
          type: 'Http'
          runAfter: {
            Exchange_key: [
              'Succeeded'
            ]
          }
          inputs: {
            method: 'PUT'
            uri: '${vault.properties.vaultUri}secrets/${apiKeySecretName}?api-version=7.4'
            body: {
              value: '@{body(\'Exchange_key\')?[\'key\']}'
              contentType: 'text/plain'
              tags: {
                key_id: '@{body(\'Exchange_key\')?[\'key_id\']}'
                rotates_at: '@{body(\'Exchange_key\')?[\'rotates_at\']}'
              }
            }
            authentication: {
              type: 'ManagedServiceIdentity'
              audience: 'https://vault.azure.net'
            }
          }
          // Key Vault answers with the secret it stored: hide both sides.
          runtimeConfiguration: {
            secureData: {
              properties: [
                'inputs'
                'outputs'
              ]
            }
          }
        }
      }
    }
  }
}

// The Logic App writes the key; role assignments in a Marketplace template run in the publisher's
// tenant, so they name the identity's resource (delegatedManagedIdentityResourceId).
resource keyWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, keyFetcher.id, roles.keyVaultSecretsOfficer)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsOfficer)
    principalId: keyFetcher.identity.principalId
    principalType: 'ServicePrincipal'
    delegatedManagedIdentityResourceId: crossTenant ? keyFetcher.id : null
  }
}

output keyVaultUri string = vault.properties.vaultUri
output apiKeySecretName string = apiKeySecretName
// The customer grants this principal "Managed Application Operator Role" on the application (listTokens).
output keyFetcherPrincipalId string = keyFetcher.identity.principalId
output applicationId string = applicationId
